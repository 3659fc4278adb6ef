"""The exit statuses of every ``vigil`` command, each said once here. Standard library only (the edge uses it).

=====  ====================  ==================================================================================
code   name                  meaning
=====  ====================  ==================================================================================
0      ``EXIT_OK``           done, or stopped cleanly by SIGTERM
1      ``EXIT_FAILED``       ran, and something failed: a rule test, a receiver in ``vigil notify test``, a sensor
                             in ``vigil edge --once``, a warning under ``vigil rules check --strict``, a store
                             during a backtest, a part in ``vigil status``; or a running part stopped on an error
2      ``EXIT_USAGE``        the command line is wrong: no command, a bad ``--from``/``--to`` or ``--store`` of
                             ``vigil rules backtest`` (argparse itself also exits 2)
3      ``EXIT_CONFIG``       the configuration is wrong or cannot be used, so nothing started: vigil.yaml,
                             edge.yaml, rules files, rule test files, a state file, a queue that cannot be opened
130    ``EXIT_INTERRUPTED``  Ctrl-C (SIGINT) before the command handles it
=====  ====================  ==================================================================================
"""

from __future__ import annotations

__all__ = ["EXIT_CONFIG", "EXIT_FAILED", "EXIT_INTERRUPTED", "EXIT_OK", "EXIT_USAGE"]

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_CONFIG = 3
EXIT_INTERRUPTED = 130
