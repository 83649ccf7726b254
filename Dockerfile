# siem-forwarder container image.
#   docker build -t siem-forwarder .
#   docker run --read-only -v fwd-state:/var/lib/siem-forwarder \
#     -v "$PWD/forwarder.toml:/etc/siem-forwarder/forwarder.toml:ro" \
#     -e CRUSOE_SECRET_KEY -p 127.0.0.1:9464:9464 siem-forwarder
# The config's [state] dir must be /var/lib/siem-forwarder (the volume). Secrets come from
# the environment or mounted files (env:NAME / file:/path); none are baked into the image.

FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md LICENSE ./
COPY forwarder ./forwarder
COPY logstash ./logstash
RUN pip wheel --no-cache-dir --wheel-dir /wheels .

FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir --no-index /wheels/*.whl \
    && rm -rf /wheels \
    && useradd --system --no-log-init --uid 10001 --home-dir /var/lib/siem-forwarder --shell /usr/sbin/nologin forwarder \
    && mkdir -p /var/lib/siem-forwarder /etc/siem-forwarder \
    && chown forwarder /var/lib/siem-forwarder
VOLUME ["/var/lib/siem-forwarder"]
WORKDIR /var/lib/siem-forwarder
USER 10001
EXPOSE 9464
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:9464/healthz', timeout=4)"]
ENTRYPOINT ["siem-forwarder"]
CMD ["run", "--config", "/etc/siem-forwarder/forwarder.toml", "--listen", "0.0.0.0:9464"]
