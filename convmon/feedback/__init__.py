"""Feedback: labels on what convmon flagged (chat.feedback), stored, joined with convmon's decisions, and
turned into precision, calibration proposals and training data. One module per job:

* contract.py: the record (schemas/feedback.schema.json), its decoder and what of it may be stored
* stage.py: a batch of chat.feedback records → `feedback` rows + dead letters (agents/feedback.py feeds it)
* oncall.py: the label command every page names, and the record `convmon alerts label` publishes
* precision.py: precision with a Wilson 95 % interval per signal, app and model version
* calibrate.py: per-app thresholds proposed from the labels, as a rules.toml snippet for review
* export.py: labelled turns as JSONL for training
"""
