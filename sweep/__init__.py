"""qfeat sweep: everything one job does — load, compress, measure, record."""

import logging

# bitsandbytes (imported by TransformerLens) warns at import that an optional CPU kernel from the
# model hub is missing: nothing a qfeat user can act on, so only its errors reach the console.
logging.getLogger("bitsandbytes").setLevel(logging.ERROR)
