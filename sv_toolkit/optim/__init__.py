"""Optimizers (8-bit block-wise quantised states) and learning-rate schedules."""
from sv_toolkit.optim.schedulers import warmup_cosine, warmup_exponential
from sv_toolkit.optim.adam8bit import Adam8bit, AdamW8bit
from sv_toolkit.optim.blockwise import dequantize_blockwise, quantize_blockwise
from sv_toolkit.optim.codebook import dynamic_codebook
from sv_toolkit.optim.sgd8bit import SGD8bit
