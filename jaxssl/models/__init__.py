"""Networks. They are used as pure functions of their state through `jaxssl.core`."""
