"""Pages for visitors: sign, thanks, confirm, manage (``routes.bp``). The forms import no Flask: the site
build renders the sign form too."""
