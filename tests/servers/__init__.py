"""Protocol-faithful test servers for the SIEM targets (Splunk HEC, Elasticsearch)."""
