"""The one exception type the CLI turns into a one-line message and a non-zero exit code."""


class UserError(Exception):
  """Bad input from the user: config, data, workdir or checkpoint. The message names the problem."""


class Preempted(Exception):
  """The run stopped on a signal after checkpointing the step it had finished."""

  EXIT_CODE = 75  # EX_TEMPFAIL: not an error; run the same command again to resume

  def __init__(self, step: int, signal_name: str, directory):
    super().__init__(
      f'{signal_name} received: stopped after step {step} and wrote its checkpoint in '
      f'{directory}; run the same command again to resume'
    )
    self.step = step
