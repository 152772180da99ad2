"""Pure domain layer: identifiers, enums, instruments, events, orders, clock, bus, errors.

Nothing in here performs I/O or imports any other part of Kestrel.
"""
