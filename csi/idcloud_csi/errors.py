"""The one error type of the driver: a gRPC status code (by name) and a message for the operator.

The logic raises CsiError; service.py turns it into the call's status. Codes are the names of
grpc.StatusCode members, so nothing below service.py imports grpc.
"""


class CsiError(Exception):
    """A failed call: code is a grpc.StatusCode name (NOT_FOUND, INVALID_ARGUMENT, ...)."""

    def __init__(self, code, message):
        super().__init__(message)
        self.code = code
        self.message = message

    def __str__(self):
        return f"{self.code}: {self.message}"


def invalid(message):
    return CsiError("INVALID_ARGUMENT", message)


def not_found(message):
    return CsiError("NOT_FOUND", message)
