"""Quality control without Django: how two people's sets of one image agree
(matching.py, agreement.py) and how several sets fuse into one (consensus.py)."""
