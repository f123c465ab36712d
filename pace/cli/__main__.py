"""
`python -m pace.cli`: the same as the `pace` command.
"""

import sys

from pace.cli import main

sys.exit(main())
