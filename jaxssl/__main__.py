from jaxssl.cli import main

main()
