import requests
import json

url = "https://api.emailmassivo.com/api/v1/external-mails/send-by-template"
data = {
    "idempotencyKey": "unique-key-string",
    "mail": {
        "to": {"email": "user@example.com", "name": "string"},
        "from": {"email": "user@example.com", "name": "string"},
        "subject": "string",
        "previewTitle": "string",
        "idTemplateMailUser": number,
        "params": {"test": "string", "test1": "string", "test2": "string"},
    },
}
headers = {"Content-Type": "application/json", "X-Api-Key": "YOUR_API_KEY"}
response = requests.post(url, json=data, headers=headers)
