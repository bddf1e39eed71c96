"""Training: data, losses, the stages as data and one loop over them. Never imported by inference;
it uses the model, io, and of inference only the refinement (the ``refine`` stage trains on what
inference hands the synthesizer) and the precision policy."""
