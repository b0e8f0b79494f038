import numpy as np

def frame_payloads(buf: bytes, starts: np.ndarray, lengths: np.ndarray,
                   masked: np.ndarray) -> list[bytes]: ...

def whole_frames(buf: bytes, ps: np.ndarray,
                 sizes: np.ndarray) -> tuple[bytearray, bytearray] | None: ...

def unmask(payload: bytes | bytearray | memoryview, key: bytes | bytearray,
           start: int = 0) -> bytes: ...
