# Airflow 3.3.2 image with this project's DAGs, plugins and the cabinet_leads package.
# Build: docker build -t cabinet-leads . (or deploy with the Astro CLI; see README).
FROM apache/airflow:3.3.2-python3.11

COPY --chown=airflow:0 requirements.txt requirements.lock /opt/cabinet-leads/
RUN pip install --no-cache-dir "apache-airflow==3.3.2" \
        -r /opt/cabinet-leads/requirements.txt -c /opt/cabinet-leads/requirements.lock

COPY --chown=airflow:0 pyproject.toml /opt/cabinet-leads/
COPY --chown=airflow:0 include /opt/cabinet-leads/include
# The domain package is installed (not only on PYTHONPATH) so the triggerer can import callbacks.
RUN pip install --no-cache-dir --no-deps -e /opt/cabinet-leads

COPY --chown=airflow:0 dags /opt/airflow/dags
COPY --chown=airflow:0 plugins /opt/airflow/plugins
ENV AIRFLOW__CORE__LOAD_EXAMPLES=False
