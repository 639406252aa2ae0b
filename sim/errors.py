"""Errors a user can act on: each names the place (file, line, dotted config path) at fault."""

from __future__ import annotations


class ServesimError(Exception):
    """Base class for errors reported to the user without a traceback."""


class ConfigError(ServesimError):
    """A configuration value is missing, misspelt, of the wrong type or out of range."""

    def __init__(self, message: str, where: str = "", file: str | None = None):
        self.message = message
        self.where = where
        self.file = file
        super().__init__(message, where, file)

    def __str__(self) -> str:
        return self._format()

    def _format(self) -> str:
        place = ""
        if self.file:
            place += f"{self.file}: "
        if self.where:
            place += f"{self.where}: "
        return place + self.message

    def in_file(self, file: str) -> ConfigError:
        """The same error, attributed to ``file``."""
        return ConfigError(self.message, self.where, file)


class TraceError(ServesimError):
    """A trace file row is malformed; names the file and the 1-based line."""

    def __init__(self, file: str, line: int, message: str):
        self.file = file
        self.line = line
        self.message = message
        # args = (file, line, message) so that copies (SimPy re-raising, pickling) rebuild it
        super().__init__(file, line, message)

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.message}"
