"""Stateful modules that own Parameters and call convprop.functional; they contain no math."""

from convprop.nn.parameter import Parameter

__all__ = ["Parameter"]
