"""What to tell a user whose install lacks the offline extra."""

EXTRA_HINT = (
    "the offline commands need the train extra: "
    "python -m pip install torch==2.13.0 && python -m pip install 'deepdenoise[train]'"
)
