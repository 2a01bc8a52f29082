"""What runs a training run, above what it orchestrates: the run's life (``lifecycle``: created or
resumed, trained, evaluated, ended), what it shows in the terminal (``display``), its TensorBoard
mirror (``tensorboard``) and the trainings ``vmcr2 compare`` starts for runs it lacks
(``missing_runs``). ``training/`` is the loop and its parts, ``evaluation/`` the judging; this
package uses both, and neither imports it.
"""
