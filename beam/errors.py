"""The errors a user can act on: the CLI turns each into one clear line and a non-zero exit."""


class AudioflowError(Exception):
    """Base class for errors that carry a message meant for the user."""


class ManifestError(AudioflowError):
    """The manifest cannot be read as a whole (no recognisable header, not UTF-8, missing file)."""


class OutputExistsError(AudioflowError):
    """The output folder already holds a dataset and --overwrite was not given."""


class DatasetError(AudioflowError):
    """A dataset folder is incomplete, corrupt or disagrees with its dataset.json."""


class AccountingError(AudioflowError):
    """Manifest rows != examples written + rows rejected: something was lost, so the job fails."""


class TooManyRejectedError(AudioflowError):
    """More rows were rejected than --max-rejected-fraction allows (the dataset and report are still written)."""


class DriftError(AudioflowError):
    """A dataset's labels drifted from the previous dataset's further than --max-label-drift allows."""


class SettingsError(AudioflowError):
    """A required setting is missing or invalid (flags, environment or .env)."""
