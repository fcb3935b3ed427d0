"""`endoxai data` (placeholder until implemented)."""


def register(sub) -> None:
    p = sub.add_parser("data", help="(not implemented yet)")
    p.set_defaults(func=lambda args: 2)
