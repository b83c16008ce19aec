"""Helpers the test files share, each once (STYLE item 19).

* ``tools``: external tools (``require_tool``, ``ON_CI``), ``run`` a client
  command, curl arguments for a test server (``curl_args``, ``curl_for``).
* ``processes``: ``python -m trio_h2`` as a real process (``run_server``,
  ``run_to_exit``, ``curl``, ``h2c_get``, ``write_module``, workers).
* ``tasks``: the task-leak checker (``trio_h2_tasks``, ``tasks_left``).
* ``frames``: every HTTP/2 frame as bytes, the preface, stateless HPACK
  blocks; ``requests``: request header lists (h2) and heads (HTTP/1.1).
* ``rawh2``: the raw HTTP/2 client that follows the protocol;
  ``attack_client``: the attacker that sends anything (both send ``frames``);
  ``attack_harness``: attack scenarios and bystanders.
* ``h1raw``: raw HTTP/1.1; ``sansio``: the sans-IO core with an h2 peer.
* ``apps``, ``wsapps``, ``wsgiapps``: the apps tests serve; ``browser``:
  headless Chromium; ``proxy_headers``: PROXY protocol v2 headers;
  ``fuzzing``: Hypothesis settings of the fuzz and property tests.
"""
