"""Operations endpoints beside the web layer: readiness checks and Prometheus metrics."""
