import numpy as np

def headers(buf: bytes, starts: np.ndarray, caplens: np.ndarray, mode: int, off: int,
            etype_at: int, af_inet: int, af_inet6: tuple[int, ...]
            ) -> tuple[bytearray, bytearray, bytearray, bytearray, bytearray, bytearray,
                       bytearray]: ...
