def rpc_rows(payloads: list[bytes], start: int, stop: int, direction: list[str],
             msg_index: list[int], ts: list[int],
             opened: dict[tuple[str, str], tuple[int, str, int]],
             max_open: int, position: list[int], kind: list[str],
             channel: list[str | None], ident: list[str | None],
             text: bytearray, ends: bytearray, answers: bytearray,
             max_bytes: int = ...) -> tuple[int, int]: ...
