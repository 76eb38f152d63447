"""Fine-tuning a diffusion model against a reward: DPOK (online policy gradient with KL regularisation) and the
reward-weighted supervised fine-tuning baseline."""

from .dpok import RLConfig, ValueNet, dpok, rollout
from .reward_weighted import reward_weighted_finetune

__all__ = ["RLConfig", "ValueNet", "dpok", "reward_weighted_finetune", "rollout"]
