"""infercap: a capacity planner for LLM inference.

The package is layered in one direction:

- ``catalog`` / ``measurements`` / ``profile`` turn YAML files into validated, frozen objects;
- ``arch``, ``precision``, ``perf``, ``serving`` and ``sweep`` are pure functions
  (catalog objects in, numpy arrays out);
- ``render`` and ``cli`` sit on top: nothing below them prints or exits.
"""

__version__ = "0.1.0"
