$headers = array( 'Content-Type: application/json', 'X-Api-Key: YOUR_API_KEY');
