"""`endoxai train` (placeholder until implemented)."""


def register(sub) -> None:
    p = sub.add_parser("train", help="(not implemented yet)")
    p.set_defaults(func=lambda args: 2)
