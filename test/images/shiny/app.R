# The test app: a slider and an output computed by the R server from it, so a changing output
# proves the round trip over Shiny's WebSocket.
library(shiny)

ui <- fluidPage(
  tags$h1("nbpool shiny"),
  sliderInput("n", "n", min = 1, max = 100, value = 10),
  textOutput("square")
)

server <- function(input, output, session) {
  output$square <- renderText(paste0("square: ", input$n * input$n))
}

shinyApp(ui, server)
