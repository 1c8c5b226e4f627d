"""Step 9: the distilled reward model as one bundle, and three ways to call it.

``bundle`` writes and reads the folder, ``heads`` turns embeddings into rewards,
``model`` is :class:`RewardModel` (text -> reward, TRL's reward-function signature),
``batching`` and ``server`` serve it over HTTP, ``cli`` is the ``embrm`` command.
"""
