app_name = "modem_upgrader"

urlpatterns = []
