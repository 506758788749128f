"""The one exception type the CLI turns into a one-line message and a non-zero exit code."""


class UserError(Exception):
  """Bad input from the user: config, data, workdir or checkpoint. The message names the problem."""
