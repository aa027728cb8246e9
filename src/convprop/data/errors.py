"""The exception the data layer raises for unreadable, corrupt or inconsistent data.

Messages follow the library's format, naming the file or data set involved::

    <function>: <what is wrong>; expected <rule or value>, got <value> (<file or shapes>)
"""

from __future__ import annotations


class DataError(ValueError):
    """A data file is missing, truncated or corrupt, or a data set is inconsistent.

    Examples
    --------
    >>> issubclass(DataError, ValueError)
    True
    """
