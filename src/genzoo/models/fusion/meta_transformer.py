"""placeholder"""
from torch import nn
class MetaTransformer(nn.Module): pass
