"""wganlab: which Wasserstein distance does a GAN really minimise?

Exact optimal transport between image sets, discrete GANs, and the experiments of
Elnekave & Weiss (ICLR 2025), Stanczuk et al. (2021), Laschos et al. (2020) and Mallasto et al. (2019).

The package root stays light: ``import wganlab`` loads no plotting code. Sub-packages:
``wganlab.data`` (datasets from one spec string), ``wganlab.ot`` (exact, sliced, patch, Sinkhorn,
medians), ``wganlab.metrics`` (the metric registry shared by the CLI, training and experiments).
"""

from wganlab.errors import ConfigError, DatasetError, InputError, WganlabError

__version__ = "0.1.0"
__all__ = ["ConfigError", "DatasetError", "InputError", "WganlabError", "__version__"]
