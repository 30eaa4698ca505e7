"""`python tests/cli/limited.py READ_ONLY FSIZE ARGS...`: run `transition ARGS` so that writes fail.

READ_ONLY "1": for root, drop the capability to ignore file modes (CAP_DAC_OVERRIDE), so that a directory of mode
0o555 is read-only for it too (exit status 97 where that cannot be done). FSIZE >= 0: a file size limit, writes
beyond it fail (EFBIG) as on a full disk.
"""

import ctypes
import os
import resource
import signal
import sys

if __name__ == "__main__":
    read_only, fsize, args = sys.argv[1] == "1", int(sys.argv[2]), sys.argv[3:]
    if read_only and os.geteuid() == 0:
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(24, 1, 0, 0, 0) != 0:  # PR_CAPBSET_DROP CAP_DAC_OVERRIDE: effective from the exec on
            sys.exit(97)
        os.execv(sys.executable, [sys.executable, __file__, "0", str(fsize), *args])
    if fsize >= 0:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (fsize, fsize))
    from transition.cli._main import main

    sys.exit(main(args))
