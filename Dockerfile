FROM python:3.11-slim
WORKDIR /app
COPY requirements.txt .
RUN pip install --no-cache-dir -r requirements.txt
COPY stage5 ./stage5
ENTRYPOINT ["python", "-m", "stage5"]
