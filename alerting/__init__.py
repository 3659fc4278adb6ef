"""The rule engine: YAML alert rules evaluated on events, status and stored history.

- ``alerting.rules``: load and check rules files (``load_rules_path``, ``load_rules_text``, ``RulesError``)
- ``alerting.conditions``: one module per condition (threshold, rate, nodata, aggregate, anomaly, status, compound)
- ``alerting.engine``: the per-(rule, series) state machine with timers; ``alerting.state``: its SQLite file
- ``alerting.service``: ``serve(settings, mqtt, store, ...)``, the MQTT consumer behind ``vigil alerting``
- ``alerting.ruletest`` / ``alerting.backtest``: ``vigil rules test`` and ``vigil rules backtest``
- ``alerting.notify``: notification delivery (receivers, routes, grouping, the outbox)

Submodules are imported on their own so that the dashboard can check rules without numpy or MQTT.
"""
