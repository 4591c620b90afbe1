"""The host agent's log lines: one JSON object per record on stderr (``ha.stderr.log``), as Lima's logrus writes."""

from __future__ import annotations

import datetime
import json
import logging


class JSONFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {"level": record.levelname.lower(), "msg": record.getMessage(),
                 "time": datetime.datetime.fromtimestamp(record.created).astimezone().isoformat()}
        if record.exc_info:
            entry["error"] = self.formatException(record.exc_info)
        return json.dumps(entry)
