from collections.abc import Callable

import numpy as np

def open_spans(decrypt: Callable[[bytes, bytes, bytes], bytes], iv: bytes, seq: int,
               src: bytes, starts: np.ndarray, stops: np.ndarray,
               refused: type[BaseException]) -> list[bytes]: ...
