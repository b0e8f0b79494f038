from collections.abc import Callable

import numpy as np

def open_runs(runs: list[tuple[Callable[[bytes, bytes, bytes], bytes], bytes, int, bytes, int]],
              starts: np.ndarray, stops: np.ndarray,
              refused: type[BaseException]) -> tuple[bytes, bytearray]: ...
