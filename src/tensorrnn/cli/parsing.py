"""Parsing of command-line values shared by the sub-commands.

Only ``cli`` knows flag names, so the messages here name them: ``what`` is the
flag without its dashes (``"n"`` for ``--n``).
"""

from __future__ import annotations

from tensorrnn.errors import ConfigError


def parse_int_list(text: str, what: str) -> list[int]:
    """Integers from ``"2,3"``, ``"4..12"`` (inclusive) or a mix such as ``"2,4..6"``.

    Parameters
    ----------
    text
        The option's value.
    what
        The flag without dashes, used in error messages (``"n"`` for ``--n``).

    Returns
    -------
    list[int]
        The values, sorted, without repeats.

    Raises
    ------
    ConfigError
        ``text`` is not such a list, is empty, or holds an empty range.
    """
    values: list[int] = []
    try:
        for part in text.split(","):
            part = part.strip()
            if not part:
                continue
            if ".." in part:
                low, high = (int(x) for x in part.split(".."))
                if high < low:
                    raise ConfigError(f"--{what} range {part} is empty; write low..high")
                values.extend(range(low, high + 1))
            else:
                values.append(int(part))
    except ValueError:
        raise ConfigError(
            f"--{what} {text!r} is not a list of integers; write e.g. 2,3 or 4..12"
        ) from None
    if not values:
        raise ConfigError(f"--{what} is empty; give values like 2,3 or 4..12")
    return sorted(set(values))


def even_orders(text: str) -> list[int]:
    """Orders ``--d`` for the odd-even split: ranges keep their even values.

    Raises
    ------
    ConfigError
        An explicit odd value, or no even value at all (e.g. ``5..5``).
    """
    explicit = [p.strip() for p in text.split(",") if p.strip() and ".." not in p]
    odd = [int(p) for p in explicit if p.lstrip("-").isdigit() and int(p) % 2]
    if odd:
        raise ConfigError(
            f"the odd-even split needs even d, got d={odd}; use even orders or --split half"
        )
    orders = [d for d in parse_int_list(text, "d") if d % 2 == 0]
    if not orders:
        raise ConfigError(
            f"--d {text!r} holds no even order and the odd-even split needs even d; "
            "widen the range (e.g. 4..8) or use --split half"
        )
    return orders


def parse_name_list(text: str, what: str, choices: tuple[str, ...] | list[str]) -> list[str]:
    """Names from a comma list such as ``"tt,tt-shared"``, each one of ``choices``.

    Returns the names in the order given, without repeats.

    Raises
    ------
    ConfigError
        An unknown name, or no name at all.
    """
    names = list(dict.fromkeys(p.strip() for p in text.split(",") if p.strip()))
    unknown = [name for name in names if name not in choices]
    if unknown:
        raise ConfigError(
            f"unknown {what} {', '.join(map(repr, unknown))} in --{what}; "
            f"choose from {', '.join(choices)}"
        )
    if not names:
        raise ConfigError(f"--{what} is empty; choose from {', '.join(choices)}")
    return names
