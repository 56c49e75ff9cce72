"""Learn new tasks on a restored model without forgetting the old ones (``graphsurgeon learn-task``).

A model with several tasks is a many-heads model (:mod:`graphsurgeon._src.multihead`): one
backbone, one head per task, served by ``(inputs, task_id)``. Learning a task reads the model
(:mod:`~graphsurgeon._src.continual.network`), trains in a graph built for the method
(:mod:`~graphsurgeon._src.continual.graph`, one module per method) and writes a new many-heads
version with the task added (:mod:`~graphsurgeon._src.continual.write`):

* ``feature-extraction``, ``fine-tune``, ``joint`` — :mod:`~graphsurgeon._src.continual.transfer`;
* ``lwf`` (Learning without Forgetting) — :mod:`~graphsurgeon._src.continual.lwf`;
* ``ewc`` (Elastic Weight Consolidation, online EWC) — :mod:`~graphsurgeon._src.continual.ewc`;
* ``packnet`` — :mod:`~graphsurgeon._src.continual.packnet`;
* ``piggyback`` — :mod:`~graphsurgeon._src.continual.piggyback`.

The pipeline is :func:`graphsurgeon._src.continual.learn.learn_task`. ``combine``'s soft targets from
several teachers are in :mod:`~graphsurgeon._src.continual.targets`.
"""
