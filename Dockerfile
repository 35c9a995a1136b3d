FROM python:3.11-slim
WORKDIR /app
COPY requirements.txt .
RUN pip install --no-cache-dir -r requirements.txt
COPY pyproject.toml README.md ./
COPY stage5 ./stage5
RUN pip install --no-cache-dir --no-deps .
ENTRYPOINT ["python", "-m", "stage5"]
