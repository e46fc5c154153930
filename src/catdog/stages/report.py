"""`python -m catdog.stages.report`, the report's older command: the code is catdog.report."""

from catdog.report import main

if __name__ == "__main__":
    main()
