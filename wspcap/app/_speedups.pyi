from typing import Any

def rpc_rows(payloads: list[bytes], start: int, stop: int, direction: list[str],
             msg_index: list[int], opened: dict[tuple[str, str], tuple[int, str]],
             max_open: int, position: list[int], kind: list[str],
             channel: list[str | None], ident: list[str | None],
             fields: list[Any]) -> tuple[int, int]: ...
