def reply_to(data):
{% if kind == "print_only" %}
    return None  # print only: no reply
{% elif kind == "echo" %}
    return data  # echo
{% elif kind == "uppercase" %}
    return data.upper()  # upper case, like the lab
{% elif kind == "prefix" %}
    return {{ text }} + data
{% elif kind == "fixed" %}
    return {{ text }}
{% elif kind == "manual" %}
    return input("Your reply: ").encode()  # you type the reply
{% else %}
    return None
{% endif %}
