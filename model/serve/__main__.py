"""python -m model.serve"""

from model.serve.cli import main

main()
