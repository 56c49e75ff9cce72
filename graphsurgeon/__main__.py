import sys

from graphsurgeon._src.cli import main

sys.exit(main())
