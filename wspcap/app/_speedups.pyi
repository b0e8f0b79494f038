def rpc_rows(payloads: list[bytes], start: int, stop: int, direction: list[str],
             msg_index: list[int], ts: list[int],
             opened: dict[tuple[str, str], tuple[int, str, int]],
             max_open: int, position: list[int], kind: list[str],
             channel: list[str | None], ident: list[str | None],
             text: bytearray, ends: bytearray, answers: bytearray) -> tuple[int, int]: ...

def pair_rows(ident: list[str | None], kind: list[str], direction: list[str],
              msg_index: list[int], channel: list[str | None], position: list[int],
              index: list[int], ts: list[int], answers: frozenset[str],
              requests: frozenset[str] | None, request_direction: str | None,
              opened: dict[tuple[str, str], tuple[int, int, str, str | None]],
              max_open: int) -> tuple[bytes, bytes, bytes, int] | None: ...
