"""convmon's development tooling, kept out of the runtime package: the model suite's data preparation,
training, build, evaluation and benchmark (`modelsuite/`), the end-to-end, GIL and profile benchmarks,
the drift and conversation-dynamics evaluations, and the demo. The worker imports nothing from here; the
`convmon` CLI reaches these commands (`models`, `bench`, `demo`) through lazy imports."""
