"""Public labelled sources: one module per task declaring its pinned repositories, licences and label mapping."""
