"""placeholder"""
def install(service):
    return
