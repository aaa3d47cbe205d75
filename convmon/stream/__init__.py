"""The streaming runtime under the agents, and the one place that touches Faust's and aiokafka's internals.

* consumer.py: the Faust consumer whose commits never pass an unprocessed record;
* offsets.py (plain) + rereads.py: skipped offsets noticed and read again;
* offsets.py (plain) + watchdog.py: a stalled partition found and recovered;
* runner.py: what every agent repeats (micro-batches with re-reads, the executor hop, sending and storing);
* current.py: naming the event a table write belongs to inside a micro-batch;
* topics.py: convmon's topics created before the worker subscribes.
"""
