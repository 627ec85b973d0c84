{% if secret %}
    if not authenticate(conn):
        print("Refused", addr, "- wrong secret")
        conn.close()
        return
{% endif %}
